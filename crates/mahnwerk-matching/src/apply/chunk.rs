//! Entries in chunks: one group commit records a chunk's entries, one more applies their
//! payments, with the same exactly-once rules as [`process`] one at a time.
//!
//! 1. Each entry is decided in order on the open items; an applying decision updates the items
//!    at once, so the next entry of the chunk sees the balance it leaves.
//! 2. Every entry's receipt is appended to its own stream with `NoStream`, all in one
//!    [`EventLog::append_many`]. An entry whose stream exists (seen before: a re-import, a
//!    restart after a kill, a booked entry after its pending one, the same entry twice in the
//!    chunk) is not recorded again: it goes through [`process`], which reads its stream and
//!    re-applies the recorded decision idempotently.
//! 3. The case streams of the newly recorded entries are read (once each, a few at a time,
//!    while the writer commits step 2) and folded; each allocation is checked against the fold exactly as [`apply_to_case`] does
//!    (payment id already there: done; closed or another balance: the entry goes to review),
//!    and all payments are appended in one more `append_many`, expected versions chained per
//!    case. A case appended to by someone else meanwhile conflicts: that entry is applied
//!    through [`apply_recorded`], re-reading.
//!
//! Whatever went off the plan (entries seen before, stale or contended cases), the items of the
//! cases involved are set back to what their case streams say.

use super::*;
use futures::{StreamExt as _, TryStreamExt as _};

/// Entries decided and recorded together.
pub const CHUNK: usize = 512;
/// Reads of the log at the same time.
const READERS: usize = 4;
/// Case streams per read.
const READ_GROUP: usize = 128;

/// Whether an entry may go through [`process_chunk`]: booked, with an amount, and neither a
/// return nor a reversal (those look for the entry they undo, one at a time).
pub fn chunkable(inc: &Incoming) -> bool {
    let e = &inc.entry;
    e.booked && e.amount.is_some() && !e.reversal && e.return_reason.is_none()
}

/// Record and apply `chunk` (every entry [`chunkable`]); one [`Processed`] per entry, in order.
/// `load` completes a partial item set (see [`decide_loading`]).
pub async fn process_chunk(
    log: &EventLog,
    tenant: &TenantId,
    items: &mut OpenItems,
    settings: &Settings,
    chunk: &[Incoming],
    metadata: &Metadata,
    load: Option<&LoadBuckets<'_>>,
) -> Result<Vec<Processed>> {
    // 0. The amount buckets the chunk's decisions consult, in one load: a dry run over the
    //    items as loaded. (Most entries name their invoice and need none; the pass below loads
    //    what the balances it applies still lead to.)
    if let Some(load) = load {
        for inc in chunk {
            let _ = decide(items, &inc.entry, settings);
        }
        let missing = items.take_missing();
        if !missing.is_empty() {
            let found = load(missing.clone()).await?;
            items.add_buckets(found, &missing);
        }
    }
    // 1. Decide in order.
    let mut received = Vec::with_capacity(chunk.len());
    let mut batches = Vec::with_capacity(chunk.len());
    for inc in chunk {
        let d = decide_loading(items, &inc.entry, settings, load).await?;
        let (r, batch) = record_batch(tenant, inc, &d, ExpectedVersion::NoStream, metadata)?;
        if d.outcome.applies() {
            items.apply(&inc.entry, &d);
        }
        received.push(r);
        batches.push(batch);
    }
    // 2. Record every entry once. While the writer commits, the case streams the decisions
    //    apply to are read (they are only appended to after the commit).
    let queued = log.enqueue_many(batches).await;
    let wanted = |only: &dyn Fn(usize) -> bool| {
        let mut cases: Vec<String> = (0..chunk.len())
            .filter(|&i| only(i) && received[i].decision.outcome.applies())
            .flat_map(|i| cases_of(&received[i]))
            .collect();
        cases.sort_unstable();
        cases.dedup();
        cases
    };
    let mut balances = read_balances(log, tenant, wanted(&|_| true)).await?;
    let mut out: Vec<Option<Processed>> = vec![None; chunk.len()];
    let mut off_plan: HashSet<String> = HashSet::new();
    let mut seen = Vec::new();
    for (i, r) in queued.outcome().await?.into_iter().enumerate() {
        match r {
            Ok(_) => {}
            Err(mahnwerk_eventlog::Error::Conflict { .. }) => seen.push(i),
            Err(e) => return Err(e.into()),
        }
    }
    if !seen.is_empty() {
        let cases = seen.iter().flat_map(|&i| cases_of(&received[i]));
        off_plan.extend(cases);
        resync(log, tenant, items, &off_plan).await?;
        for &i in &seen {
            out[i] = Some(process(log, tenant, items, settings, &chunk[i], metadata, load).await?);
        }
        // Those may have applied to cases just read: read again.
        balances = read_balances(log, tenant, wanted(&|i| out[i].is_none())).await?;
    }
    // 3. Apply the new entries' payments.
    let fresh: Vec<usize> = (0..chunk.len())
        .filter(|&i| out[i].is_none() && received[i].decision.outcome.applies())
        .collect();
    let mut case_batches = Vec::new();
    let mut owner = Vec::new();
    let mut stale: Vec<(usize, String)> = Vec::new();
    for &i in &fresh {
        match plan_entry(tenant, &received[i], &mut balances, metadata) {
            Ok(planned) => {
                for b in planned {
                    owner.push(i);
                    case_batches.push(b);
                }
            }
            Err(Error::Stale(why)) => stale.push((i, why)),
            Err(e) => return Err(e),
        }
    }
    let mut contended: Vec<usize> = Vec::new();
    if !case_batches.is_empty() {
        for (k, r) in log.append_many(case_batches).await?.into_iter().enumerate() {
            match r {
                Ok(_) => {}
                Err(mahnwerk_eventlog::Error::Conflict { .. }) => {
                    if !contended.contains(&owner[k]) {
                        contended.push(owner[k]);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    for &i in &contended {
        off_plan.extend(cases_of(&received[i]));
        if let Err(why) = apply_recorded(log, tenant, &received[i], metadata).await? {
            stale.push((i, why));
        }
    }
    for (i, why) in stale {
        off_plan.extend(cases_of(&received[i]));
        let stream = StreamId::new(tenant, ENTRY_KIND, &received[i].entry_id);
        to_review(log, &stream, &chunk[i], &received[i], &why, metadata).await?;
        let mut decision = received[i].decision.clone();
        decision.outcome = Outcome::Review;
        decision.reason = why;
        out[i] = Some(Processed {
            entry_id: received[i].entry_id.clone(),
            decision,
            duplicate: false,
        });
    }
    if !off_plan.is_empty() {
        resync(log, tenant, items, &off_plan).await?;
    }
    Ok(out
        .into_iter()
        .zip(received)
        .map(|(p, r)| {
            p.unwrap_or(Processed {
                entry_id: r.entry_id,
                decision: r.decision,
                duplicate: false,
            })
        })
        .collect())
}

/// The case streams of `cases` folded: [`READ_GROUP`] streams per read of the log
/// ([`EventLog::read_streams`], one query instead of one per case), [`READERS`] reads at a time.
async fn read_balances(
    log: &EventLog,
    tenant: &TenantId,
    cases: Vec<String>,
) -> Result<HashMap<String, CaseBalance>> {
    let mut out = HashMap::with_capacity(cases.len());
    let mut streams: Vec<(String, StreamId)> = Vec::with_capacity(cases.len());
    for case_id in cases {
        match case_id.parse::<CaseId>() {
            Ok(case) => streams.push((case_id, case.stream(tenant))),
            Err(_) => {
                out.insert(case_id, CaseBalance::default());
            }
        }
    }
    let groups: Vec<Vec<(String, StreamId)>> =
        streams.chunks(READ_GROUP).map(<[_]>::to_vec).collect();
    let folded: Vec<Vec<(String, CaseBalance)>> = futures::stream::iter(groups)
        .map(|group| async move {
            let ids: Vec<StreamId> = group.iter().map(|(_, s)| s.clone()).collect();
            let read = log.read_streams(&ids).await?;
            Ok::<_, Error>(
                group
                    .into_iter()
                    .zip(read)
                    .map(|((case_id, _), events)| (case_id, fold_case(&events)))
                    .collect(),
            )
        })
        .buffer_unordered(READERS)
        .try_collect()
        .await?;
    out.extend(folded.into_iter().flatten());
    Ok(out)
}

fn cases_of(r: &TransactionReceived) -> impl Iterator<Item = String> + '_ {
    r.decision.allocations.iter().map(|a| a.case_id.clone())
}

/// The case batches of one recorded entry, checked against `balances` (advanced only when
/// every allocation of the entry fits, so a stale entry applies nothing).
fn plan_entry(
    tenant: &TenantId,
    r: &TransactionReceived,
    balances: &mut HashMap<String, CaseBalance>,
    metadata: &Metadata,
) -> Result<Vec<AppendBatch>> {
    let booked_on = r
        .booked_on
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    let last = r.decision.allocations.len().saturating_sub(1);
    let mut planned = Vec::new();
    // The entry's cases as it leaves them; written back only when every allocation fits.
    let mut after: HashMap<String, CaseBalance> = HashMap::new();
    for (i, a) in r.decision.allocations.iter().enumerate() {
        let case_id = &a.case_id;
        let payment_id = auto_payment_id(&r.entry_id, case_id);
        let gone = || Error::Stale(format!("case {case_id} does not exist"));
        if !after.contains_key(case_id) {
            let bal = balances.get(case_id).ok_or_else(gone)?;
            after.insert(case_id.clone(), bal.clone());
        }
        let bal = after.get_mut(case_id).ok_or_else(gone)?;
        if bal.applied.contains_key(&payment_id) {
            continue;
        }
        let open = bal.open.ok_or_else(gone)?;
        if let Some(why) = &bal.closed {
            return Err(Error::Stale(format!("case {case_id} is {why}")));
        }
        check_assumed(case_id, open, a)?;
        let over = if i == last {
            r.decision.overpayment
        } else {
            None
        };
        let applied = PaymentApplied {
            payment_id: payment_id.clone(),
            entry_id: r.entry_id.clone(),
            amount: a.amount,
            booked_on,
            rule: r.decision.rule.as_str().to_owned(),
            open_after: a.open_after,
            discount: a.discount,
        };
        let case: CaseId = case_id.parse().map_err(|_| gone())?;
        let events = payment_events(applied, over, open, metadata);
        let n = u64::try_from(events.len()).unwrap_or(u64::MAX);
        planned.push(AppendBatch {
            stream: case.stream(tenant),
            expected: expected(bal.version),
            events,
        });
        bal.version = Some(bal.version.unwrap_or(0) + n);
        bal.open = Some(a.open_after);
        bal.applied.insert(payment_id, a.amount);
    }
    balances.extend(after);
    Ok(planned)
}

/// Set the items of `cases` to the balances their case streams hold.
async fn resync(
    log: &EventLog,
    tenant: &TenantId,
    items: &mut OpenItems,
    cases: &HashSet<String>,
) -> Result<()> {
    for case_id in cases {
        let Ok(case) = case_id.parse::<CaseId>() else {
            continue;
        };
        let bal = fold_case(&read_all(log, &case.stream(tenant)).await?);
        if let Some(open) = bal.open {
            items.set_balance(case_id, open, bal.closed);
        }
    }
    Ok(())
}
