//! Statement files: the balance check over the whole file first, then every entry recorded
//! and applied exactly once.

use super::*;
use crate::events::{CHECK_KIND, STATEMENT_UNBALANCED, StatementUnbalanced};

/// Outcome counts of an import.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub statements: u64,
    pub entries: u64,
    pub applied: u64,
    pub partial: u64,
    pub split: u64,
    pub overpaid: u64,
    pub review: u64,
    pub ignored: u64,
    pub duplicates: u64,
    pub warnings: Vec<String>,
}

impl ImportSummary {
    fn count(&mut self, p: &Processed) {
        self.entries += 1;
        if p.duplicate {
            self.duplicates += 1;
            return;
        }
        match p.decision.outcome {
            Outcome::Applied => self.applied += 1,
            Outcome::Partial => self.partial += 1,
            Outcome::Split => self.split += 1,
            Outcome::Overpaid => self.overpaid += 1,
            Outcome::Review => self.review += 1,
            Outcome::Ignored => self.ignored += 1,
        }
    }
}

/// What the first pass over a statement file found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StatementCheck {
    pub statements: u64,
    pub warnings: Vec<String>,
    /// Statements that do not balance, accepted because the tenant said so (else the check
    /// is an error).
    pub unbalanced: Vec<StatementUnbalanced>,
}

/// First pass over a statement file: every statement must parse and balance (where both
/// balances are given); with `accept_unbalanced` one that does not is returned in
/// [`StatementCheck::unbalanced`] instead of rejecting the file.
pub fn check_statement(
    path: &std::path::Path,
    csv: Option<&CsvMapping>,
    accept_unbalanced: bool,
) -> Result<StatementCheck> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::Rejected(format!("reading the upload: {e}")))?;
    let reader = statement_reader(
        std::io::BufReader::with_capacity(256 * 1024, file),
        csv,
        ParseOptions::default(),
    )
    .map_err(|e| Error::invalid("chunk", e.to_string()))?;
    let mut statements = 0;
    let mut warnings = Vec::new();
    let mut unbalanced = Vec::new();
    let mut current: Option<(String, String, Option<Money>)> = None;
    for item in reader {
        match item.map_err(|e| Error::invalid("chunk", e.to_string()))? {
            StatementItem::Header(h) => {
                current = Some((
                    h.statement_id
                        .clone()
                        .unwrap_or_else(|| format!("at line {}", h.line)),
                    account_of(&h),
                    h.opening_balance.as_ref().map(|b| b.amount),
                ));
            }
            StatementItem::Entry(_) => {}
            StatementItem::End(end) => {
                statements += 1;
                let (id, account, opening) = current.take().unwrap_or_default();
                match &end.balance_check {
                    BalanceCheck::Balanced => {}
                    BalanceCheck::Unbalanced { difference } => {
                        let o = opening.map_or(0, |m| m.minor);
                        let c = end.closing_balance.as_ref().map_or(0, |b| b.amount.minor);
                        if accept_unbalanced {
                            let u = StatementUnbalanced {
                                statement_id: id,
                                account,
                                currency: opening
                                    .map(|m| m.currency.as_str().to_owned())
                                    .unwrap_or_default(),
                                opening_minor: o,
                                credits_minor: end.credits_total,
                                debits_minor: end.debits_total,
                                closing_minor: c,
                                difference_minor: *difference,
                            };
                            warnings.push(u.warning());
                            unbalanced.push(u);
                            continue;
                        }
                        return Err(Error::Rejected(format!(
                            "statement {id}: opening balance {o} + credits {} + debits {} = {}, but the closing balance is {c} (difference {difference}, minor units); nothing imported",
                            end.credits_total,
                            end.debits_total,
                            o + end.credits_total + end.debits_total
                        )));
                    }
                    BalanceCheck::NotChecked { reason } => {
                        warnings.push(format!("statement {id}: balance not checked: {reason}"));
                    }
                }
            }
        }
    }
    if statements == 0 {
        return Err(Error::invalid("chunk", "no statement found"));
    }
    Ok(StatementCheck {
        statements,
        warnings,
        unbalanced,
    })
}

impl Matching {
    /// One `matching.statement_unbalanced.v1` per accepted unbalanced statement, once: a
    /// statement imported again finds its stream and records nothing.
    async fn record_unbalanced(
        &self,
        tenant: &TenantId,
        unbalanced: &[StatementUnbalanced],
        metadata: &Metadata,
    ) -> Result<()> {
        if unbalanced.is_empty() {
            return Ok(());
        }
        let batches = unbalanced
            .iter()
            .map(|u| AppendBatch {
                stream: StreamId::new(tenant, CHECK_KIND, &u.stream_id()),
                expected: ExpectedVersion::NoStream,
                events: vec![NewEvent {
                    event_id: event_id_now(),
                    event_type: STATEMENT_UNBALANCED.to_owned(),
                    payload: serde_json::to_value(u).unwrap_or(serde_json::Value::Null),
                    occurred_at: chrono::Utc::now(),
                    metadata: metadata.clone(),
                }],
            })
            .collect();
        for r in self.log.append_many(batches).await? {
            match r {
                Ok(_) | Err(mahnwerk_eventlog::Error::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// A parsed statement entry as the matching path takes it.
fn incoming(ids: &mut crate::entry::EntryIds, (account, e): (String, Entry)) -> Incoming {
    let id = ids.next(&account, &e);
    Incoming {
        entry: bank_entry(id, &e),
        charges: e.charges,
        bank_reference: e.bank_reference.clone(),
        source: "statement",
        fingerprint: None,
        end_to_end_id: e.end_to_end_id.clone(),
    }
}

impl Matching {
    /// Import a statement file from disk: balance check over everything first, then every
    /// entry recorded and applied exactly once. `progress` is called after each chunk of entries.
    pub async fn import_file(
        &self,
        tenant: &TenantId,
        path: &std::path::Path,
        csv: Option<CsvMapping>,
        metadata: &Metadata,
        mut progress: impl FnMut(&ImportSummary),
    ) -> Result<ImportSummary> {
        let (p, c) = (path.to_owned(), csv.clone());
        let accept = crate::settings::load(&self.log, tenant)
            .await?
            .accept_unbalanced;
        let StatementCheck {
            statements,
            warnings,
            unbalanced,
        } = tokio::task::spawn_blocking(move || check_statement(&p, c.as_ref(), accept))
            .await
            .map_err(|e| Error::Rejected(format!("statement check failed: {e}")))??;
        // The warning is on the log before any entry of the statement is applied.
        self.record_unbalanced(tenant, &unbalanced, metadata)
            .await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<(String, Entry)>>(2 * CHUNK);
        let p = path.to_owned();
        let reader = tokio::task::spawn_blocking(move || {
            let send = |r| tx.blocking_send(r).is_ok();
            let file = match std::fs::File::open(&p) {
                Ok(f) => f,
                Err(e) => {
                    send(Err(Error::Rejected(format!("reading the upload: {e}"))));
                    return;
                }
            };
            let items = match statement_reader(
                std::io::BufReader::with_capacity(256 * 1024, file),
                csv.as_ref(),
                ParseOptions::default(),
            ) {
                Ok(r) => r,
                Err(e) => {
                    send(Err(Error::invalid("chunk", e.to_string())));
                    return;
                }
            };
            let mut account = String::new();
            for item in items {
                let ok = match item {
                    Ok(StatementItem::Header(h)) => {
                        account = account_of(&h);
                        true
                    }
                    Ok(StatementItem::Entry(e)) => send(Ok((account.clone(), *e))),
                    Ok(StatementItem::End(_)) => true,
                    Err(e) => send(Err(Error::invalid("chunk", e.to_string()))),
                };
                if !ok {
                    return;
                }
            }
        });
        let mut summary = ImportSummary {
            statements,
            warnings,
            ..Default::default()
        };
        let mut ids = crate::entry::EntryIds::default();
        let mut batch: Vec<Incoming> = Vec::with_capacity(CHUNK);
        let mut more = true;
        while more {
            // Whatever the parser has ready, up to a chunk (at least one entry).
            match rx.recv().await {
                Some(next) => batch.push(incoming(&mut ids, next?)),
                None => more = false,
            }
            while batch.len() < CHUNK {
                match rx.try_recv() {
                    Ok(next) => batch.push(incoming(&mut ids, next?)),
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                        more = false;
                        break;
                    }
                }
            }
            if batch.is_empty() {
                continue;
            }
            let processed = self
                .record(tenant, &batch, metadata, IMPORT_REFRESH)
                .await?;
            batch.clear();
            for p in &processed {
                summary.count(p);
            }
            progress(&summary);
        }
        let _ = reader.await;
        Ok(summary)
    }
}
