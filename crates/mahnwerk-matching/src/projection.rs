//! The matching service's own tables, built from events by a [`Handler`] on the consumer library:
//!
//! - `matching_items`: one open item per case (the engine's [`OpenItem`] as JSON), from
//!   `invoice.*` and the payment facts on case streams, plus the payer IBANs learnt from applied
//!   entries (`bank_transaction.received.v1` with allocations) and any RF reference a letter
//!   printed other than the one the engine derives (`letter.rendered.v1`);
//! - `matching_keys`: each item's lookup keys ([`OpenItems::item_keys`]: RF references, invoice
//!   number keys, open amount), so a chunk of entries loads only the items it can reach;
//! - `matching_unmatched`: the review queue, from `payment.unmatched.v1` and the review actions.
//!
//! Portable SQL (`sqlx::Any`): PostgreSQL and SQLite alike. The consumer library commits these
//! rows together with its inbox row, so a redelivered event changes nothing twice.

use crate::engine::{CashDiscount, OpenItem, OpenItems};
use crate::events::{EntryEvent, UnmatchedPayload};
use mahnwerk_bus::{Envelope, Handler, HandlerError};
use mahnwerk_domain::lifecycle::CaseEvent;
use mahnwerk_domain::payment::PaymentEvent;
use mahnwerk_domain::{Money, StreamId};
use sqlx::{Any, AnyPool, Transaction};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS matching_items (tenant TEXT NOT NULL, case_id TEXT NOT NULL, item_json TEXT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (tenant, case_id))",
    "CREATE INDEX IF NOT EXISTS matching_items_cursor ON matching_items (tenant, position, case_id)",
    "CREATE TABLE IF NOT EXISTS matching_keys (tenant TEXT NOT NULL, lookup TEXT NOT NULL, case_id TEXT NOT NULL, PRIMARY KEY (tenant, lookup, case_id))",
    "CREATE INDEX IF NOT EXISTS matching_keys_case ON matching_keys (tenant, case_id)",
    "CREATE TABLE IF NOT EXISTS matching_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS matching_unmatched (tenant TEXT NOT NULL, entry_id TEXT NOT NULL, status TEXT NOT NULL, entry_json TEXT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (tenant, entry_id))",
    "CREATE INDEX IF NOT EXISTS matching_unmatched_open ON matching_unmatched (tenant, status, position)",
    "CREATE TABLE IF NOT EXISTS matching_applied (tenant TEXT NOT NULL, entry_id TEXT NOT NULL, e2e TEXT NOT NULL, iban TEXT NOT NULL, amount_minor BIGINT NOT NULL, currency TEXT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (tenant, entry_id))",
    "CREATE INDEX IF NOT EXISTS matching_applied_amount ON matching_applied (tenant, amount_minor, currency)",
];

/// The applied entry a return or reversal undoes: the one with the same end-to-end id and amount,
/// else the only one from the same IBAN with that amount. `None` when none or several fit.
pub async fn find_original(
    pool: &AnyPool,
    tenant: &str,
    e2e: Option<&str>,
    iban: Option<&str>,
    amount: Money,
) -> Result<Vec<String>, sqlx::Error> {
    let e2e = e2e.filter(|e| !e.is_empty() && *e != "NOTPROVIDED");
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT entry_id, e2e, iban FROM matching_applied WHERE tenant = $1 AND amount_minor = $2 AND currency = $3 ORDER BY position",
    )
    .bind(tenant.to_owned())
    .bind(amount.minor)
    .bind(amount.currency.to_string())
    .fetch_all(pool)
    .await?;
    let by_e2e: Vec<String> = rows
        .iter()
        .filter(|r| e2e.is_some_and(|e| r.1 == e))
        .map(|r| r.0.clone())
        .collect();
    if !by_e2e.is_empty() {
        return Ok(by_e2e);
    }
    let iban = iban.map(mahnwerk_eventlog::privacy::iban_index);
    Ok(rows
        .iter()
        .filter(|r| iban.as_deref().is_some_and(|i| !i.is_empty() && r.2 == i))
        .map(|r| r.0.clone())
        .collect())
}

pub async fn ensure_schema(pool: &AnyPool) -> Result<(), sqlx::Error> {
    for stmt in SCHEMA {
        sqlx::query(*stmt).execute(pool).await?;
    }
    backfill_keys(pool).await
}

/// Items projected before `matching_keys` existed get their keys, page by page, once.
async fn backfill_keys(pool: &AnyPool) -> Result<(), sqlx::Error> {
    let done: Option<(String,)> =
        sqlx::query_as("SELECT value FROM matching_meta WHERE name = 'keys_v1'")
            .fetch_optional(pool)
            .await?;
    if done.is_some() {
        return Ok(());
    }
    let tenants: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT tenant FROM matching_items")
        .fetch_all(pool)
        .await?;
    for (tenant,) in tenants {
        let mut after = ItemCursor::default();
        while let Some((items, cursor)) = load_items_page(pool, &tenant, &after, ITEM_PAGE).await? {
            let mut tx = pool.begin().await?;
            for item in &items {
                save_keys(&mut tx, &tenant, item).await?;
            }
            tx.commit().await?;
            after = cursor;
        }
    }
    sqlx::query("INSERT INTO matching_meta (name, value) VALUES ('keys_v1', 'done') ON CONFLICT (name) DO NOTHING")
        .execute(pool)
        .await?;
    Ok(())
}

/// Replace an item's lookup keys ([`OpenItems::item_keys`]).
async fn save_keys(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    item: &OpenItem,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM matching_keys WHERE tenant = $1 AND case_id = $2")
        .bind(tenant.to_owned())
        .bind(item.case_id.clone())
        .execute(&mut **tx)
        .await?;
    let keys = OpenItems::item_keys(item);
    if keys.is_empty() {
        return Ok(());
    }
    let mut sql = String::from("INSERT INTO matching_keys (tenant, lookup, case_id) VALUES ");
    for i in 0..keys.len() {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!("($1, ${}, $2)", i + 3));
    }
    sql.push_str(" ON CONFLICT DO NOTHING");
    // Only placeholders are formatted into the statement; every value is bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.to_owned())
        .bind(item.case_id.clone());
    for k in keys {
        q = q.bind(k);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Lookup keys per query (bind parameters stay far below every backend's limit).
const KEYS_PER_QUERY: usize = 500;

/// One lookup per key or case on PostgreSQL: the values go in as one JSON array and each is
/// looked up by the primary key (`OFFSET 0` keeps the subquery a per-row lookup, not a join the
/// planner may turn into a scan). An `IN (…)` list is planned against the table's statistics,
/// and right after a bulk write (a large import) there are none: PostgreSQL then read every key
/// of the tenant and filtered (85 ms per chunk of 500 keys at 100,000 open items). SQLite
/// looks each `IN` value up by the index whatever it knows.
fn by_key_sql(pg: bool, table: &str, column: &str, key: &str, n: usize) -> String {
    if pg {
        format!(
            "SELECT t.{column} FROM json_array_elements_text(CAST($2 AS json)) AS u(k) \
             CROSS JOIN LATERAL (SELECT {column} FROM {table} WHERE tenant = $1 AND {key} = u.k OFFSET 0) AS t"
        )
    } else {
        let list = (0..n)
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(",");
        format!("SELECT {column} FROM {table} WHERE tenant = $1 AND {key} IN ({list})")
    }
}

/// The `column` of the rows of `table` whose `key` is one of `values` (see [`by_key_sql`]).
async fn fetch_by_key(
    pool: &AnyPool,
    tenant: &str,
    (table, column, key): (&str, &str, &str),
    values: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    let pg = pool
        .connect_options()
        .database_url
        .scheme()
        .starts_with("postgres");
    let mut out = Vec::new();
    for part in values.chunks(KEYS_PER_QUERY) {
        let sql = by_key_sql(pg, table, column, key, part.len());
        let mut q =
            sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql)).bind(tenant.to_owned());
        if pg {
            let json = serde_json::to_string(part).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            q = q.bind(json);
        } else {
            for v in part {
                q = q.bind(v.clone());
            }
        }
        out.extend(q.fetch_all(pool).await?.into_iter().map(|(c,)| c));
    }
    Ok(out)
}

/// The items of a tenant any of `keys` names ([`crate::engine::entry_keys`]): the part of the
/// open items a chunk of entries can reach, never all of them.
pub async fn load_items_for_keys(
    pool: &AnyPool,
    tenant: &str,
    keys: &[String],
) -> Result<Vec<OpenItem>, sqlx::Error> {
    let mut cases =
        fetch_by_key(pool, tenant, ("matching_keys", "case_id", "lookup"), keys).await?;
    cases.sort_unstable();
    cases.dedup();
    let rows = fetch_by_key(
        pool,
        tenant,
        ("matching_items", "item_json", "case_id"),
        &cases,
    )
    .await?;
    items_from_rows(tenant, rows).await
}

/// Rows of `matching_items` read per query: a refresh over a million open items never holds
/// more than one page of JSON rows besides the index it builds.
pub const ITEM_PAGE: i64 = 2000;

/// The open items of a tenant, as the engine indexes them.
pub async fn load_items(pool: &AnyPool, tenant: &str) -> Result<OpenItems, sqlx::Error> {
    let mut items = OpenItems::new();
    let mut after = ItemCursor::default();
    while let Some(page) = load_items_page(pool, tenant, &after, ITEM_PAGE).await? {
        for item in page.0 {
            items.upsert(item);
        }
        after = page.1;
    }
    Ok(items)
}

/// Where a paged read of `matching_items` stands: the last (position, case id) read. Rows are
/// read in that order, so rows sharing a position are never split across pages and lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemCursor {
    pub position: i64,
    pub case_id: String,
}

/// The next page (at most `limit` items) of a tenant's items changed after `after`, and the
/// cursor after it; `None` when there are none.
pub async fn load_items_page(
    pool: &AnyPool,
    tenant: &str,
    after: &ItemCursor,
    limit: i64,
) -> Result<Option<(Vec<OpenItem>, ItemCursor)>, sqlx::Error> {
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT item_json, position, case_id FROM matching_items WHERE tenant = $1 AND position >= $2 AND (position > $2 OR case_id > $3) ORDER BY position, case_id LIMIT $4",
    )
    .bind(tenant.to_owned())
    .bind(after.position)
    .bind(after.case_id.clone())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let Some((_, position, case_id)) = rows.last() else {
        return Ok(None);
    };
    let cursor = ItemCursor {
        position: *position,
        case_id: case_id.clone(),
    };
    let items = items_from_rows(tenant, rows.into_iter().map(|(j, _, _)| j).collect()).await?;
    Ok(Some((items, cursor)))
}

/// Whether the projection holds `case_id` (tests and read-your-writes).
pub async fn has_item(pool: &AnyPool, tenant: &str, case_id: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT case_id FROM matching_items WHERE tenant = $1 AND case_id = $2")
            .bind(tenant.to_owned())
            .bind(case_id.to_owned())
            .fetch_optional(pool)
            .await?;
    Ok(row.is_some())
}

/// A page of the review queue: (entry, position), oldest first, after `after` (a position).
pub async fn list_unmatched(
    pool: &AnyPool,
    tenant: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<(UnmatchedPayload, i64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT entry_json, position FROM matching_unmatched WHERE tenant = $1 AND status = 'open' AND position > $2 ORDER BY position LIMIT $3",
    )
    .bind(tenant.to_owned())
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut values: Vec<(serde_json::Value, i64)> = rows
        .into_iter()
        .filter_map(|(json, pos)| serde_json::from_str(&json).ok().map(|v| (v, pos)))
        .collect();
    open_all(tenant, values.iter_mut().map(|(v, _)| v)).await?;
    Ok(values
        .into_iter()
        .filter_map(|(v, pos)| serde_json::from_value(v).ok().map(|p| (p, pos)))
        .collect())
}

/// Open the sealed personal data of stored rows, with one key lookup for all.
async fn open_all<'a>(
    tenant: &str,
    values: impl Iterator<Item = &'a mut serde_json::Value>,
) -> Result<(), sqlx::Error> {
    if let Some(keyring) = mahnwerk_eventlog::privacy::process_keyring() {
        let mut items: Vec<(&str, &mut serde_json::Value)> = values.map(|v| (tenant, v)).collect();
        keyring
            .open_payloads(&mut items)
            .await
            .map_err(|e| sqlx::Error::Protocol(format!("opening personal data: {e}")))?;
    }
    Ok(())
}

/// An item as stored: its debtor's name and IBANs in a `debtor` object, sealed under the case's
/// subject (ADR 006).
async fn item_to_json(tenant: &str, item: &OpenItem) -> Result<String, HandlerError> {
    let mut value = serde_json::to_value(item).map_err(permanent)?;
    if let Some(map) = value.as_object_mut() {
        let name = map.remove("debtor_name").unwrap_or_default();
        let ibans = map.remove("debtor_ibans").unwrap_or_default();
        let customer = map.remove("customer_number").unwrap_or_default();
        map.insert(
            "debtor".into(),
            serde_json::json!({"name": name, "ibans": ibans, "customer_number": customer}),
        );
    }
    let stream = format!("{tenant}/case/{}", item.case_id);
    mahnwerk_eventlog::privacy::seal_json(tenant, &stream, &mut value)
        .await
        .map_err(transient)?;
    Ok(value.to_string())
}

/// The inverse of [`item_to_json`] once opened; also reads items stored before it.
fn item_from_value(mut value: serde_json::Value) -> serde_json::Result<OpenItem> {
    if let Some(map) = value.as_object_mut()
        && let Some(serde_json::Value::Object(mut debtor)) = map.remove("debtor")
    {
        map.insert(
            "debtor_name".into(),
            debtor.remove("name").unwrap_or_default(),
        );
        map.insert(
            "debtor_ibans".into(),
            debtor.remove("ibans").unwrap_or_default(),
        );
        if let Some(c) = debtor.remove("customer_number").filter(|c| !c.is_null()) {
            map.insert("customer_number".into(), c);
        }
    }
    serde_json::from_value(value)
}

async fn items_from_rows(tenant: &str, rows: Vec<String>) -> Result<Vec<OpenItem>, sqlx::Error> {
    let mut values: Vec<serde_json::Value> = rows
        .iter()
        .filter_map(|j| serde_json::from_str(j).ok())
        .collect();
    open_all(tenant, values.iter_mut()).await?;
    Ok(values
        .into_iter()
        .filter_map(|v| item_from_value(v).ok())
        .collect())
}

/// Keeps the matching tables from the events.
#[derive(Debug, Clone, Copy, Default)]
pub struct Projection;

fn permanent(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Permanent(e.to_string())
}

async fn load_item(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    case_id: &str,
) -> Result<Option<OpenItem>, HandlerError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT item_json FROM matching_items WHERE tenant = $1 AND case_id = $2")
            .bind(tenant.to_owned())
            .bind(case_id.to_owned())
            .fetch_optional(&mut **tx)
            .await?;
    let Some((json,)) = row else {
        return Ok(None);
    };
    let mut value: serde_json::Value = serde_json::from_str(&json).map_err(permanent)?;
    mahnwerk_eventlog::privacy::open_json(tenant, &mut value)
        .await
        .map_err(transient)?;
    item_from_value(value).map(Some).map_err(permanent)
}

fn transient(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Transient(e.to_string())
}

async fn save_item(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    item: &OpenItem,
    position: i64,
) -> Result<(), HandlerError> {
    let json = item_to_json(tenant, item).await?;
    sqlx::query(
        "INSERT INTO matching_items (tenant, case_id, item_json, position) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant, case_id) DO UPDATE SET item_json = excluded.item_json, position = excluded.position",
    )
    .bind(tenant.to_owned())
    .bind(item.case_id.clone())
    .bind(json)
    .bind(position)
    .execute(&mut **tx)
    .await?;
    save_keys(tx, tenant, item).await?;
    Ok(())
}

/// The letters service's event naming the RF reference a letter printed.
const LETTER_RENDERED: &str = "letter.rendered.v1";

impl Projection {
    /// A letter printed an RF reference: the item knows it (normally it is the one
    /// `rf::for_invoice` derives, which the engine indexes anyway; another is recorded).
    async fn on_letter(
        &self,
        event: &Envelope,
        tenant: &str,
        case_id: &str,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<(), HandlerError> {
        let Some(printed) = event
            .payload
            .get("payment_reference")
            .and_then(serde_json::Value::as_str)
            .and_then(crate::text::normalise_rf)
        else {
            return Ok(());
        };
        let Some(mut item) = load_item(tx, tenant, case_id).await? else {
            return Ok(());
        };
        let derived = mahnwerk_formats::rf::for_invoice(
            item.payment_reference.as_deref(),
            &item.invoice_number,
            &item.case_id,
        );
        if derived.is_some_and(|d| d.as_str() == printed)
            || item.letter_references.contains(&printed)
        {
            return Ok(());
        }
        item.letter_references.push(printed);
        save_item(tx, tenant, &item, event.position).await
    }

    async fn on_case(
        &self,
        event: &Envelope,
        tenant: &str,
        case_id: &str,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<(), HandlerError> {
        if event.event_type == LETTER_RENDERED {
            return self.on_letter(event, tenant, case_id, tx).await;
        }
        if let Some(ce) =
            CaseEvent::from_parts(&event.event_type, &event.payload).map_err(permanent)?
        {
            let item = match ce {
                CaseEvent::InvoiceIssued(i) => {
                    let inv = i.invoice;
                    let open = inv.amount_due();
                    // The engine holds one discount per item: the earliest term.
                    let cash_discount = inv.cash_discounts.first().map(|d| CashDiscount {
                        amount: Money::new(open.minor - d.discount, open.currency),
                        until: d.until,
                    });
                    Some(OpenItem {
                        case_id: case_id.to_owned(),
                        invoice_number: inv.number.to_string(),
                        debtor_name: inv.debtor.name.expose().clone(),
                        debtor_ibans: Vec::new(),
                        customer_number: inv.debtor.customer_number.clone(),
                        open,
                        payment_reference: inv.payment_reference.clone(),
                        letter_references: Vec::new(),
                        due_date: inv.due_date,
                        cash_discount,
                        closed: None,
                    })
                }
                other => {
                    let Some(mut item) = load_item(tx, tenant, case_id).await? else {
                        return Ok(());
                    };
                    match other {
                        CaseEvent::InvoiceCancelled(_) => item.closed = Some("cancelled".into()),
                        CaseEvent::InvoiceCredited(c) => {
                            // Ingest's `open_after` does not know payments: subtract the credit.
                            item.open.minor = (item.open.minor - c.amount.minor).max(0);
                            if c.open_after.is_zero() {
                                item.closed = Some("credited".into());
                            }
                        }
                        CaseEvent::DueDateExtended(d) => item.due_date = d.new_due_date,
                        _ => return Ok(()),
                    }
                    Some(item)
                }
            };
            if let Some(item) = item {
                save_item(tx, tenant, &item, event.position).await?;
            }
            return Ok(());
        }
        if let Some(pe) =
            PaymentEvent::from_parts(&event.event_type, &event.payload).map_err(permanent)?
        {
            let open_after: Money = match pe {
                PaymentEvent::Applied(a) => a.open_after,
                PaymentEvent::Reversed(r) => r.open_after,
                _ => return Ok(()),
            };
            if let Some(mut item) = load_item(tx, tenant, case_id).await? {
                item.open = open_after;
                save_item(tx, tenant, &item, event.position).await?;
            }
        }
        Ok(())
    }

    async fn on_entry(
        &self,
        event: &Envelope,
        tenant: &str,
        entry_id: &str,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<(), HandlerError> {
        let Some(ev) =
            EntryEvent::from_parts(&event.event_type, &event.payload).map_err(permanent)?
        else {
            return Ok(());
        };
        let set_status = |status: &'static str| {
            sqlx::query(
                "UPDATE matching_unmatched SET status = $1 WHERE tenant = $2 AND entry_id = $3",
            )
            .bind(status)
            .bind(tenant.to_owned())
            .bind(entry_id.to_owned())
        };
        match ev {
            EntryEvent::Received(r) => {
                if r.booked && r.amount.minor > 0 && r.decision.outcome.applies() {
                    sqlx::query(
                        "INSERT INTO matching_applied (tenant, entry_id, e2e, iban, amount_minor, currency, position) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, entry_id) DO NOTHING",
                    )
                    .bind(tenant.to_owned())
                    .bind(entry_id.to_owned())
                    .bind(r.payer.end_to_end_id.clone().unwrap_or_default())
                    .bind(r.payer.iban.as_deref().filter(|i| !i.is_empty()).map(mahnwerk_eventlog::privacy::iban_index).unwrap_or_default())
                    .bind(r.amount.minor)
                    .bind(r.amount.currency.to_string())
                    .bind(event.position)
                    .execute(&mut **tx)
                    .await?;
                }
                // Learn the payer's IBAN for the debtors an entry was applied to.
                let Some(iban) = r.payer.iban.as_deref().filter(|i| !i.is_empty()) else {
                    return Ok(());
                };
                for a in &r.decision.allocations {
                    if let Some(mut item) = load_item(tx, tenant, &a.case_id).await? {
                        let iban = iban.replace(' ', "").to_uppercase();
                        if !item.debtor_ibans.contains(&iban) {
                            item.debtor_ibans.push(iban);
                            save_item(tx, tenant, &item, event.position).await?;
                        }
                    }
                }
            }
            EntryEvent::Unmatched(u) => {
                let mut value = serde_json::to_value(&u).map_err(permanent)?;
                mahnwerk_eventlog::privacy::seal_json(tenant, &event.stream, &mut value)
                    .await
                    .map_err(transient)?;
                let json = value.to_string();
                sqlx::query(
                    "INSERT INTO matching_unmatched (tenant, entry_id, status, entry_json, position) VALUES ($1, $2, 'open', $3, $4) \
                     ON CONFLICT (tenant, entry_id) DO UPDATE SET status = 'open', entry_json = excluded.entry_json, position = excluded.position",
                )
                .bind(tenant.to_owned())
                .bind(entry_id.to_owned())
                .bind(json)
                .bind(event.position)
                .execute(&mut **tx)
                .await?;
            }
            EntryEvent::MatchedManually(_) => {
                set_status("matched").execute(&mut **tx).await?;
            }
            EntryEvent::MarkedNotOurs(_) => {
                set_status("not_ours").execute(&mut **tx).await?;
            }
            EntryEvent::MatchUndone(_) => {
                set_status("open").execute(&mut **tx).await?;
            }
            EntryEvent::Returned(_) => {}
        }
        Ok(())
    }
}

impl Handler for Projection {
    async fn handle(
        &self,
        event: &Envelope,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<(), HandlerError> {
        let Ok(stream) = event.stream.parse::<StreamId>() else {
            return Err(permanent(format!("bad stream id {:?}", event.stream)));
        };
        let tenant = stream.tenant().to_string();
        match stream.kind() {
            "case" => self.on_case(event, &tenant, stream.id(), tx).await,
            crate::events::ENTRY_KIND => self.on_entry(event, &tenant, stream.id(), tx).await,
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    /// Right after a bulk write PostgreSQL has no statistics for the lookup tables: a chunk's
    /// keys and cases must still be looked up by their primary keys, never by scanning the
    /// tenant's rows (it did: a bitmap scan over every key of the tenant, 85 ms per chunk).
    #[tokio::test]
    async fn lookups_use_the_primary_keys_without_statistics() {
        let Some(db) = mahnwerk_auth::scratch::ScratchDatabase::create("mahnwerk_match_plan").await
        else {
            return;
        };
        let pool = db.pool.clone();
        ensure_schema(&pool).await.unwrap();
        for (table, fill) in [
            (
                "matching_keys",
                "INSERT INTO matching_keys (tenant, lookup, case_id) \
                 SELECT 'bench', 'n:' || g, 'c' || g FROM generate_series(1, 20000) g",
            ),
            (
                "matching_items",
                "INSERT INTO matching_items (tenant, case_id, item_json, position) \
                 SELECT 'bench', 'c' || g, '{}', g FROM generate_series(1, 20000) g",
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE {table} SET (autovacuum_enabled = false)"
            )))
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(fill).execute(&pool).await.unwrap();
        }
        for (table, column, key, prefix) in [
            ("matching_keys", "case_id", "lookup", "n:"),
            ("matching_items", "item_json", "case_id", "c"),
        ] {
            let values: Vec<String> = (0..KEYS_PER_QUERY)
                .map(|i| format!("{prefix}{}", i * 37 + 1))
                .collect();
            let sql = format!(
                "EXPLAIN {}",
                by_key_sql(true, table, column, key, values.len())
            );
            let plan: Vec<String> = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql))
                .bind("bench")
                .bind(serde_json::to_string(&values).unwrap())
                .fetch_all(&pool)
                .await
                .unwrap()
                .into_iter()
                .map(|(l,)| l)
                .collect();
            let plan = plan.join("\n");
            assert!(!plan.contains("Seq Scan"), "{table}: a scan: {plan}");
            assert!(!plan.contains("Bitmap"), "{table}: a bitmap scan: {plan}");
            assert!(
                plan.contains(&format!("{key} = u.k")),
                "{table}: not one lookup per value: {plan}"
            );
        }
        // And the rows: the cases the keys name, each once, then their items.
        let keys: Vec<String> = ["n:7", "n:9", "n:7", "n:none"]
            .iter()
            .map(|k| (*k).to_owned())
            .collect();
        let mut cases = fetch_by_key(
            &pool,
            "bench",
            ("matching_keys", "case_id", "lookup"),
            &keys,
        )
        .await
        .unwrap();
        cases.sort_unstable();
        cases.dedup();
        assert_eq!(cases, vec!["c7".to_owned(), "c9".to_owned()]);
        let other = fetch_by_key(
            &pool,
            "other",
            ("matching_keys", "case_id", "lookup"),
            &keys,
        )
        .await
        .unwrap();
        assert!(other.is_empty(), "another tenant's keys: {other:?}");
        db.drop().await;
    }
}
