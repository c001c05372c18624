//! B6: the dunning scheduler over 1,000,000 open cases of which 300,000 are due for a step
//! today: steps decided and appended per second by the real service's pass
//! ([`Dunning::run_due`]: the next-action index, the case stream read and folded, the pure core's
//! decision, the append with the expected version, the next action recorded) vs B1's append
//! rate on the same backend in the same run (target >= 0.5x). Peak RSS of the pass as in B5
//! (`clear_refs` 5, then `VmHWM`).
//!
//! Setup outside the clock: every case's `invoice.issued.v1` and the `dunning.opened.v1` the
//! service decides for it (the core's [`plan`] under the tenant's default policy) are appended
//! in group commits of 1000 streams, and the service's projection and next-action index are
//! recorded through [`Dunning::record`], as the service leaves them. 30 % of the invoices fall
//! due on one day, the rest four weeks later; the simulated clock is then set to the day the
//! first group's first step is due (computed by the core, not assumed), and one pass runs.

use crate::b5::{peak_rss_mib, reset_peak_rss, rss_mib};
use crate::infra::{CpuSplit, Env};
use crate::report::Row;
use crate::workload::proto_invoice;
use anyhow::{Context, Result, bail};
use chrono::{Duration, NaiveDate};
use mahnwerk_clock::{Clock as _, SharedClock, SimulatedClock};
use mahnwerk_domain::lifecycle::{CaseEvent, InvoiceIssued};
use mahnwerk_domain::{CaseId, DebtorKind, TenantId};
use mahnwerk_dunning::dunning_case::{DunningEvent, next_action_at};
use mahnwerk_dunning::law::calendar::FederalState;
use mahnwerk_dunning::policy::Policy;
use mahnwerk_dunning_service::Dunning;
use mahnwerk_dunning_service::engine::{ACTOR, Reconciled};
use mahnwerk_dunning_service::facts::{Folded, StreamEvent, plan};
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use std::sync::Arc;
use std::time::Instant;

/// The day the cases are issued and opened on (the workload's issue date).
const OPENED_ON: &str = "2026-11-02";
/// Due date of the cases due for a step on the measured day.
const DUE_NOW: &str = "2026-11-16";
/// Due date of the others (four weeks later: not due yet on the measured day).
const DUE_LATER: &str = "2026-12-14";

fn d(s: &str) -> Result<NaiveDate> {
    s.parse().with_context(|| format!("date {s}"))
}

/// Case `i` is in the group due on the measured day (3 in 10).
pub fn due_now(i: u64) -> bool {
    i % 10 < 3
}

/// The opened cases of a fresh log, as the service leaves them.
pub struct Cases {
    pub dunning: Dunning,
    pub clock: SimulatedClock,
    pub tenant: TenantId,
    /// The day the first group's first step is due.
    pub step_day: NaiveDate,
    pub due: u64,
    pub ids: Vec<CaseId>,
}

/// The first day a case opened under `policy` with this due date gets a step (the pure core,
/// day by day).
fn first_step_day(policy: &Policy, kind: DebtorKind, due: NaiveDate) -> Result<NaiveDate> {
    let mut p = proto_invoice("probe", if kind == DebtorKind::Consumer { 0 } else { 1 });
    p.due_date = due.to_string();
    let invoice = mahnwerk_ingest::convert::invoice_from_proto(&p, "invoice")
        .map_err(|e| anyhow::anyhow!("probe invoice invalid: {e:?}"))?;
    let ev = CaseEvent::InvoiceIssued(InvoiceIssued { invoice });
    let payload = ev.to_payload();
    let folded = Folded::of([StreamEvent {
        version: 1,
        event_id: "probe",
        event_type: ev.event_type(),
        payload: &payload,
    }])?;
    let opened = plan(&folded, Some(policy), None, false, d(OPENED_ON)?)?;
    let state = opened.state.context("the probe case did not open")?;
    let mut day = next_action_at(&state).context("no next action")?;
    for _ in 0..120 {
        let f = Folded {
            state: Some(state.clone()),
            version: 2,
            pending: Vec::new(),
        };
        let p = plan(&f, None, None, true, day)?;
        if p.events
            .iter()
            .any(|(e, _)| matches!(e, DunningEvent::StepReached(_)))
        {
            return Ok(day);
        }
        day += Duration::days(1);
    }
    bail!("no step within 120 days of the next action")
}

/// Issues and opens `n` cases of a fresh tenant on `url` (outside any clock).
pub async fn open_cases(env: &Env, url: &str, tenant: &str, n: u64) -> Result<Cases> {
    let log = EventLog::connect(url).await.context("connecting the log")?;
    let pool = mahnwerk_auth::connect_any(url).await?;
    mahnwerk_dunning_service::ensure_schema(&pool).await?;
    let tenant: TenantId = tenant.parse().context("tenant")?;
    let state = FederalState::NW;
    let clock = SimulatedClock::starting_on(d(OPENED_ON)?);
    let shared: SharedClock = Arc::new(clock.clone());
    let dunning = Dunning::new(log.clone(), pool, shared, state);
    // The tenant has no policies of its own: the service opens every case under the default
    // for its debtor kind.
    let consumer = mahnwerk_dunning_service::policies::for_new_case(
        &log,
        &tenant,
        DebtorKind::Consumer,
        "",
        state,
    )
    .await?;
    let business = mahnwerk_dunning_service::policies::for_new_case(
        &log,
        &tenant,
        DebtorKind::Business,
        "",
        state,
    )
    .await?;
    let (due_now_day, due_later_day) = (d(DUE_NOW)?, d(DUE_LATER)?);
    let step_day = first_step_day(&consumer, DebtorKind::Consumer, due_now_day)?.max(
        first_step_day(&business, DebtorKind::Business, due_now_day)?,
    );
    let later = first_step_day(&consumer, DebtorKind::Consumer, due_later_day)?.min(
        first_step_day(&business, DebtorKind::Business, due_later_day)?,
    );
    if later <= step_day {
        bail!("the later group would be due on {later}, not after {step_day}");
    }
    let opened_on = d(OPENED_ON)?;
    let mut ids = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut due = 0;
    let mut i = 0;
    while i < n {
        let end = (i + 1000).min(n);
        let mut batches = Vec::with_capacity(1000);
        let mut recorded = Vec::with_capacity(1000);
        for k in i..end {
            let mut p = proto_invoice(&env.run, k);
            p.due_date = if due_now(k) { DUE_NOW } else { DUE_LATER }.into();
            let invoice = mahnwerk_ingest::convert::invoice_from_proto(&p, "invoice")
                .map_err(|e| anyhow::anyhow!("generated invoice {k} invalid: {e:?}"))?;
            let case = CaseId::for_invoice(&tenant, &invoice.number);
            let policy = match invoice.debtor.kind {
                DebtorKind::Consumer => &consumer,
                DebtorKind::Business => &business,
            };
            let issued = CaseEvent::InvoiceIssued(InvoiceIssued { invoice });
            let payload = issued.to_payload();
            let issued_id = event_id_now();
            let id_text = issued_id.to_string();
            let folded = Folded::of([StreamEvent {
                version: 1,
                event_id: &id_text,
                event_type: issued.event_type(),
                payload: &payload,
            }])?;
            let opened = plan(&folded, Some(policy), None, false, opened_on)?;
            let mut events = vec![NewEvent {
                event_id: issued_id,
                event_type: issued.event_type().to_owned(),
                payload,
                occurred_at: chrono::Utc::now(),
                metadata: Metadata {
                    actor: "key:bench".into(),
                    ..Default::default()
                },
            }];
            events.extend(opened.events.iter().map(|(e, _)| NewEvent {
                event_id: event_id_now(),
                event_type: e.event_type().to_owned(),
                payload: e.to_payload(),
                occurred_at: chrono::Utc::now(),
                metadata: Metadata {
                    causation_id: Some(id_text.clone()),
                    actor: ACTOR.into(),
                    ..Default::default()
                },
            }));
            let version = u64::try_from(events.len()).unwrap_or(0);
            batches.push(AppendBatch {
                stream: case.stream(&tenant),
                expected: ExpectedVersion::NoStream,
                events,
            });
            let due_on = opened.state.as_ref().and_then(next_action_at);
            if due_on.is_some_and(|day| day <= step_day) {
                due += 1;
            }
            recorded.push(Reconciled {
                tenant: tenant.clone(),
                case,
                appended: Vec::new(),
                version,
                state: opened.state,
                due_on,
                today: opened_on,
            });
            ids.push(case);
        }
        if let Some(e) = log
            .append_many(batches)
            .await?
            .into_iter()
            .find_map(Result::err)
        {
            bail!("opening cases: {e}");
        }
        dunning.record(&recorded).await?;
        i = end;
    }
    Ok(Cases {
        dunning,
        clock,
        tenant,
        step_day,
        due,
        ids,
    })
}

fn per_sec(n: u64, secs: f64) -> f64 {
    #[allow(clippy::cast_precision_loss, clippy::as_conversions)]
    let n = n as f64;
    n / secs.max(1e-9)
}

pub async fn run(env: &Env, backend: &'static str, n: u64, b1_rate: Option<f64>) -> Result<Row> {
    let url = env.log_url(backend, "b6").await?;
    let expected_due = (0..n).filter(|i| due_now(*i)).count();
    eprintln!("B6 {backend}: opening {n} cases ({expected_due} due for a step on one day)");
    let t_setup = Instant::now();
    let cases = open_cases(env, &url, "bench", n).await?;
    let setup = t_setup.elapsed();
    if usize::try_from(cases.due).unwrap_or(0) != expected_due {
        bail!(
            "B6 {backend}: {} cases due on {}, expected {expected_due}",
            cases.due,
            cases.step_day
        );
    }
    // The clock moves to the measured day; one scheduler pass decides and appends.
    let days = (cases.step_day - cases.clock.today()).num_days();
    cases.clock.advance(Duration::days(days));
    let log = cases.dunning.log().clone();
    let head0 = log.head_position().await?;
    let peak_ok = reset_peak_rss();
    let rss_at_reset = rss_mib().unwrap_or(0.0);
    let cpu0 = CpuSplit::now();
    eprintln!(
        "B6 {backend}: setup {:.0} s; one scheduler pass on {}",
        setup.as_secs_f64(),
        cases.step_day
    );
    let t0 = Instant::now();
    let acted = cases.dunning.run_due(cases.step_day).await?;
    let took = t0.elapsed().as_secs_f64();
    let cpu = CpuSplit::now().per_item_since(&cpu0, acted);
    let peak = if peak_ok { peak_rss_mib() } else { None };
    let appended = u64::try_from(log.head_position().await? - head0).unwrap_or(0);
    if acted != cases.due {
        bail!(
            "B6 {backend}: the pass acted on {acted} cases, {} were due",
            cases.due
        );
    }
    // Nothing is left for today: a second pass finds nothing to do.
    let again = cases.dunning.run_due(cases.step_day).await?;
    if again != 0 {
        bail!("B6 {backend}: a second pass on the same day acted on {again} cases");
    }
    let rate = per_sec(acted, took);
    eprintln!("B6 {backend}: {rate:.0} steps/s ({appended} events in {took:.1} s)");
    let mut row = Row::new(
        &format!("B6/{backend}"),
        format!(
            "one scheduler pass (Dunning::run_due) over {n} open cases, {} due for a step today: read, decide, append with expected version, next action recorded ({backend})",
            cases.due
        ),
        rate,
        "steps/s",
    )
    .against("B1 append events/s", b1_rate, 0.5, ">= 0.5x B1");
    row.notes.push(format!(
        "pass {took:.1} s wall for {acted} steps ({appended} events appended: {:.0} events/s); setup (issue + open {n} cases, projection) {:.0} s, outside the clock; {cpu}",
        per_sec(appended, took),
        setup.as_secs_f64()
    ));
    if let Some(peak) = peak {
        row.notes.push(format!(
            "peak RSS of the pass {peak:.0} MiB (VmHWM after a clear_refs reset; RSS at the reset {rss_at_reset:.0} MiB, incl. the setup's case ids)"
        ));
    }
    Ok(row)
}
